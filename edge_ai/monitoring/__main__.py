import sys

from edge_ai.monitoring.app import main

sys.exit(main())
