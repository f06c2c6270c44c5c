// Command nwhealth captures, stores, queries and analyses network traffic for
// incident response: see README.md.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
