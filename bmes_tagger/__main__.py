from bmes_tagger.entry import main

main()
