// Command failhook is a webhook receiver that always fails: it answers
// every request 500 after reading it (or -status, e.g. 204 for a healthy
// receiver), counts them, and prints the count when it is stopped (SIGTERM
// or SIGINT). bench/webhooks.sh points the account's webhook at it.
//
//	failhook -addr 127.0.0.1:56090 [-status 500]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os/signal"
	"sync/atomic"
	"syscall"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:56090", "listen address")
	status := flag.Int("status", http.StatusInternalServerError, "the HTTP status of every answer")
	flag.Parse()
	var n atomic.Int64
	srv := &http.Server{Addr: *addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n.Add(1)
		w.WriteHeader(*status)
	})}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	fmt.Printf("requests %d\n", n.Load())
}
