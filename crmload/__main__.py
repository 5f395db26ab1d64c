from crmload.cli import main

raise SystemExit(main())
