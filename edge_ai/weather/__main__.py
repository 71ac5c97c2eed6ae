import sys

from edge_ai.weather.app import main

sys.exit(main())
