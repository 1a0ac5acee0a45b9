package api_test

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/node/nodetest"
)

// TestNumbersPages: GET numbers with ?q=, ?limit=, ?cursor= serves one page
// of the matching numbers, in order, with X-Total-Count and a Link to the
// next page; without them it is still every number. Walking the pages
// sees each number once.
func TestNumbersPages(t *testing.T) {
	var sb strings.Builder
	sb.WriteString(`
account: acme
domain: acme.test
users:
  alice: { extension: "101", password: "pw-alice-1" }
locations:
  madrid: { forward: false, forward_destination: "user:alice" }
extensions:
  sales: { members: ["user:alice"] }
numbers:
`)
	const n = 1234
	for i := range n {
		ext := "user:alice"
		if i%100 == 7 {
			ext = "sales"
		}
		fmt.Fprintf(&sb, "  \"+3492%07d\": { extension: %q%s }\n", i, ext, map[bool]string{true: ", location: madrid, tags: [VIP]"}[i%250 == 3])
	}
	srv := nodetest.Run(t, sb.String())
	c := newClient(t, srv, "acme", "pages", true, 1)

	var all map[string]config.Number
	want(t, c.do("GET", "/acme/numbers", nil), 200).decode(t, &all)
	if len(all) != n {
		t.Fatalf("GET numbers without a page: %d numbers, want %d", len(all), n)
	}

	next := regexp.MustCompile(`^<(/api/v1/acme/numbers\?[^>]+)>; rel="next"$`)
	// walk follows the Link headers from path and returns the numbers seen
	// in order, and the X-Total-Count of the first page.
	walk := func(path string, limit int) ([]string, string) {
		t.Helper()
		var seen []string
		total := ""
		for pages := 0; path != ""; pages++ {
			if pages > n {
				t.Fatal("the pages do not end")
			}
			r := want(t, c.do("GET", path, nil), 200)
			var page map[string]config.Number
			r.decode(t, &page)
			if len(page) > limit {
				t.Fatalf("%s: %d numbers, limit %d", path, len(page), limit)
			}
			keys := make([]string, 0, len(page))
			for k := range page {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			seen = append(seen, keys...)
			if total == "" {
				total = r.Header.Get("X-Total-Count")
			}
			path = ""
			if l := r.Header.Get("Link"); l != "" {
				m := next.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("Link %q", l)
				}
				path = strings.TrimPrefix(m[1], "/api/v1")
			} else if len(page) == limit && len(seen) < n {
				t.Fatalf("%s: a full page and no next link", path)
			}
		}
		return seen, total
	}

	t.Run("every number once, in order", func(t *testing.T) {
		seen, total := walk("/acme/numbers?limit=100", 100)
		if total != fmt.Sprint(n) || len(seen) != n || !slices.IsSorted(seen) || len(slices.Compact(slices.Clone(seen))) != n {
			t.Errorf("total %s, %d seen (sorted %v)", total, len(seen), slices.IsSorted(seen))
		}
	})
	t.Run("default page", func(t *testing.T) {
		r := want(t, c.do("GET", "/acme/numbers?q=", nil), 200)
		var page map[string]config.Number
		r.decode(t, &page)
		if len(page) != 50 || r.Header.Get("X-Total-Count") != fmt.Sprint(n) || r.Header.Get("Link") == "" {
			t.Errorf("?q= : %d numbers, total %q, link %q", len(page), r.Header.Get("X-Total-Count"), r.Header.Get("Link"))
		}
	})
	for _, tc := range []struct {
		q     string
		count int
		first string
	}{
		{"+34920000123", 1, "+34920000123"},
		{"0034 9200 00123", 1, "+34920000123"}, // another form of the number
		{"000012", 11, "+34920000012"},         // a part of it
		{"SALES", 13, "+34920000007"},          // the extension, any case
		{"madrid", 5, "+34920000003"},          // the location
		{"vip", 5, "+34920000003"},             // a tag
		{"nothing-like-it", 0, ""},
	} {
		t.Run("q="+tc.q, func(t *testing.T) {
			seen, total := walk("/acme/numbers?"+url.Values{"q": {tc.q}, "limit": {"3"}}.Encode(), 3)
			if len(seen) != tc.count || total != fmt.Sprint(tc.count) || (tc.count > 0 && seen[0] != tc.first) {
				t.Errorf("%d found (total %q), first %v; want %d, %s", len(seen), total, seen, tc.count, tc.first)
			}
		})
	}
	t.Run("bad input", func(t *testing.T) {
		wantPaths(t, c.do("GET", "/acme/numbers?cursor=nonsense", nil), 400, "cursor")
		wantPaths(t, c.do("GET", "/acme/numbers?limit=0", nil), 400, "limit")
		wantPaths(t, c.do("GET", "/acme/numbers?limit=100000", nil), 400, "limit")
		want(t, c.do("GET", "/globex/numbers?limit=5", nil), 404)
	})
}
