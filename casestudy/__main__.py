from casestudy.cli import main

raise SystemExit(main())
