from semfi_batch.entry import main

main()
