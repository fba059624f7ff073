from chargepoint.cli.main import main

main()
