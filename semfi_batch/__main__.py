from semfi_batch.cli import main

main()
