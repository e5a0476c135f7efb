import sys

from batch_dashboard.cli import main

sys.exit(main())
