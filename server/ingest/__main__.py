from server.ingest.worker import main

main()
