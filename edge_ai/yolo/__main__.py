import sys

from edge_ai.yolo.app import main

sys.exit(main())
