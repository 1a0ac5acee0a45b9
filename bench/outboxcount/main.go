// Command outboxcount prints how many webhook events a Switchboard SQLite
// database holds in each state, e.g. "queued 59998 delivered 0"
// (bench/webhooks.sh).
//
//	outboxcount ./switchboard-data/switchboard.db
package main

import (
	"database/sql"
	"fmt"
	"os"
	"strings"

	_ "modernc.org/sqlite"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: outboxcount SQLITE_FILE")
		os.Exit(2)
	}
	db, err := sql.Open("sqlite", "file:"+os.Args[1]+"?mode=ro")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT state, count(*) FROM webhook_events GROUP BY state ORDER BY state`)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		parts = append(parts, fmt.Sprintf("%s %d", state, n))
	}
	if err := rows.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(strings.Join(parts, ", "))
}
