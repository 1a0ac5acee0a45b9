// Command gen100k writes an account with many numbers of 10 rules each, for
// timing `switchboard route -f` and `validate` on a large file:
//
//	go run ./bench/gen100k -n 100000 > /tmp/big.yaml
//
// The 10 rule sets are YAML anchors so that the file stays under the 10 MiB
// document limit; every number still compiles its own rules.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
)

func main() {
	n := flag.Int("n", 100000, "numbers")
	flag.Parse()
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	fmt.Fprintln(w, "account: big")
	fmt.Fprintln(w, "defaults: { trunk: carrier }")
	fmt.Fprintln(w, "trunks: { carrier: { address: \"sip:127.0.0.1:5070\", inbound_from: [\"127.0.0.1/32\"] } }")
	fmt.Fprintln(w, "extensions:")
	fmt.Fprintln(w, "  main: { destination: \"+34600000003\" }")
	fmt.Fprintln(w, "  vip: { destination: \"+34600000004\" }")
	fmt.Fprintln(w, "numbers:")
	for i := 0; i < *n; i++ {
		num := fmt.Sprintf("+3491%07d", i)
		set := i % 10
		if i < 10 {
			fmt.Fprintf(w, "  %q:\n    extension: main\n    rules: &r%d\n", num, set)
			for r := 0; r < 10; r++ {
				fmt.Fprintf(w, "      - { prefix: \"%d%d*\", weight: %d, action: %s }\n", set, r, r*10, action(r))
			}
			continue
		}
		fmt.Fprintf(w, "  %q: { extension: main, rules: *r%d }\n", num, set)
	}
}

func action(r int) string {
	switch r % 4 {
	case 0:
		return "reject-busy"
	case 1:
		return "cnam-prefix, cnam_prefix: \"X \""
	case 2:
		return "route, extension: vip"
	}
	return "reject-503"
}
