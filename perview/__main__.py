from perview.cli import main

raise SystemExit(main())
