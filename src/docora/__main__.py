from docora.cli import main

raise SystemExit(main())
