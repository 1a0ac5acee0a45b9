package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// The stubs only make Options' interfaces non-nil: Routes and NewHandler
// never call them (a call would panic on the nil embedded interface).
type (
	stubTokens struct{ Authenticator }
	stubCalls  struct{ LiveCalls }
	stubStore  struct{ Store }
)

// fullOptions enables every API route.
type stubAccounts struct{ Accounts }

func fullOptions() Options {
	return Options{Tokens: stubTokens{}, Calls: stubCalls{}, Store: stubStore{}, Accounts: stubAccounts{}, Hub: NewHub()}
}

// loadOpenAPI parses the embedded document (no external references).
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	return doc
}

// operations is every operation of doc as "METHOD /path".
func operations(doc *openapi3.T) map[string]*openapi3.Operation {
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}
	return ops
}

var statusKey = regexp.MustCompile(`^([1-5][0-9][0-9]|[1-5]XX|default)$`)

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi is %q, want 3.1.0", doc.OpenAPI)
	}
	// kin-openapi validates by doc.OpenAPI: 3.1 rules, JSON Schema 2020-12
	// schemas, path parameters against the templates, unique operation ids.
	if err := doc.Validate(context.Background(), openapi3.EnableMultiError()); err != nil {
		var each openapi3.MultiError
		if !errors.As(err, &each) {
			each = openapi3.MultiError{err}
		}
		for _, e := range each {
			t.Errorf("openapi.json is not a valid OpenAPI 3.1 document: %v", e)
		}
	}
	// The one rule of the OAS 3.1 schema that kin-openapi leaves unchecked.
	for key, op := range operations(doc) {
		for code := range op.Responses.Map() {
			if !statusKey.MatchString(code) {
				t.Errorf("%s: response key %q is not a status code, 1XX-5XX or default", key, code)
			}
		}
	}
}

// TestOpenAPIMatchesRoutes compares the document with the route table both
// ways: every route served is documented and every documented operation is
// served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	o := fullOptions()
	// Registering the routes panics on a duplicate or conflicting pattern.
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("the routes do not register on a ServeMux: %v", p)
			}
		}()
		NewHandler(o)
	}()

	served := map[string]bool{}
	for _, rt := range Routes(o) {
		if served[rt] {
			t.Errorf("route %s is listed twice", rt)
		}
		served[rt] = true
	}
	documented := operations(loadOpenAPI(t))

	var undocumented, unserved []string
	for rt := range served {
		if documented[rt] == nil {
			undocumented = append(undocumented, rt)
		}
	}
	for op := range documented {
		if !served[op] {
			unserved = append(unserved, op)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unserved)
	if len(undocumented) > 0 {
		t.Errorf("%d routes are not operations of openapi.json:\n\t%s", len(undocumented), strings.Join(undocumented, "\n\t"))
	}
	if len(unserved) > 0 {
		t.Errorf("%d operations of openapi.json are not routes:\n\t%s", len(unserved), strings.Join(unserved, "\n\t"))
	}
}

// TestOpenAPIProblemResponses checks that each operation documents how it
// fails: wrap answers every API route with problems (400 for a bad path,
// 401, 404 for another account, 429) and refuses writes to read-only
// tokens with 403.
func TestOpenAPIProblemResponses(t *testing.T) {
	for key, op := range operations(loadOpenAPI(t)) {
		if key == "GET /api/v1/openapi.json" {
			continue // served outside wrap, unauthenticated: it cannot fail
		}
		method, _, _ := strings.Cut(key, " ")
		isProblem := func(code string) bool {
			r := op.Responses.Value(code)
			if r == nil || r.Value == nil {
				return false
			}
			mt := r.Value.Content.Get("application/problem+json")
			return mt != nil && mt.Schema != nil && mt.Schema.Ref == "#/components/schemas/Problem"
		}
		problems := 0
		for code := range op.Responses.Map() {
			if strings.HasPrefix(code, "4") && isProblem(code) {
				problems++
			}
		}
		if problems == 0 {
			t.Errorf("%s declares no 4xx application/problem+json response", key)
		}
		need := []int{http.StatusUnauthorized, http.StatusTooManyRequests}
		if method != http.MethodGet {
			need = append(need, http.StatusForbidden) // read-only tokens
		}
		for _, code := range need {
			if !isProblem(fmt.Sprint(code)) {
				t.Errorf("%s does not declare the %d problem response", key, code)
			}
		}
	}
}
