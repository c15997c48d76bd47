from kplab.cli import main

main()
