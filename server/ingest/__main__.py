from server.ingest.source import main

main()
