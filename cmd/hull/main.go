// Command hull is Hull's CLI; see package cli.
package main

import (
	"os"

	"github.com/hullproject/hull/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
