"""`python -m waz_actors.drivers.host --id h0 --endpoint ipc://...`"""

from waz_actors.drivers.host.main import main

raise SystemExit(main())
