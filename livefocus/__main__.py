from livefocus.cli import main

main()
