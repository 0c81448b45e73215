from symopt.cli import main

main()
