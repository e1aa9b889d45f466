from llmrelay.cli.main import main

raise SystemExit(main())
