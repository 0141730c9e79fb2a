from painedge.cli import main

raise SystemExit(main())
