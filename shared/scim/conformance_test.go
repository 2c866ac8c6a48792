package scim_test

import (
	"net/http/httptest"
	"testing"

	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/scim/scimtest"
	"github.com/learnerlink/learnerlink/shared/store/dynamo"
	"github.com/learnerlink/learnerlink/shared/testenv"
)

// The conformance suites run over real HTTP against the handler on a bolt
// store, exactly as the lead runs them against the local runner binary.
func TestConformance(t *testing.T) {
	suites := []struct {
		name string
		run  func(t *testing.T, baseURL, token string)
	}{
		{"OktaSpec", scimtest.OktaSpec},
		{"OktaCRUD", scimtest.OktaCRUD},
		{"OktaPushGroups", scimtest.OktaPushGroups},
		{"EntraShapes", scimtest.EntraShapes},
	}
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			e := newEnv(t, nil)
			s.run(t, e.base(), testToken)
		})
	}
	t.Run("all suites on one shared server", func(t *testing.T) {
		e := newEnv(t, nil)
		for _, s := range suites {
			t.Run(s.name, func(t *testing.T) { s.run(t, e.base(), testToken) })
		}
	})
}

// TestConformanceDynamoDB runs the same suites with the DynamoDB store the
// Lambda uses, on DynamoDB Local (skipped when
// LEARNERLINK_TEST_DYNAMODB_ENDPOINT is unset), in a uniquely named table.
func TestConformanceDynamoDB(t *testing.T) {
	client := testenv.DynamoClient(t)
	table := testenv.StoreTable(t, client, "learnerlink-scimtest-")
	h, err := scim.NewHandler(dynamo.New(client, table), &recQueue{}, scim.Config{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for _, s := range []func(*testing.T, string, string){scimtest.OktaSpec, scimtest.OktaCRUD, scimtest.OktaPushGroups, scimtest.EntraShapes} {
		s(t, srv.URL+"/scim/v2", testToken)
	}
}
