from imgdrop.cli import main

raise SystemExit(main())
