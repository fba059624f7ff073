from chargepoint.cli.entry import main

main()
