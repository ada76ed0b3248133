"""`python -m waz_actors.delivery '<json settings>'`: the webhook delivery worker."""

from waz_actors.delivery.main import main

raise SystemExit(main())
