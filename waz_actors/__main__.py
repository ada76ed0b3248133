from waz_actors.cli.main import main

main()
