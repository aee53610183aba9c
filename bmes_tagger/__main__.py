from bmes_tagger.cli import main

main()
