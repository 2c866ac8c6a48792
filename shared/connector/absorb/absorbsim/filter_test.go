package absorbsim

import (
	"errors"
	"testing"
)

func TestFilter(t *testing.T) {
	u := &User{
		ID: "0000000a-0000-4000-8000-000000000001", Username: "OBrien", LastName: "O'Brien",
		EmailAddress: "ob@example.com", ExternalID: "00u1", EmployeeNumber: "E-7",
		DepartmentID: "0000000a-0000-4000-8000-0000000000d1", ActiveStatus: 1,
		CustomFields: map[string]any{"string30": "|Eng|Sales|"},
	}
	tests := []struct {
		filter string
		want   bool
		bad    bool
	}{
		{filter: "username eq 'OBrien'", want: true},
		{filter: "username eq 'obrien'", want: true}, // case-insensitive collation
		{filter: "USERNAME eq 'obrien'", want: true}, // field names too
		{filter: "lastName eq 'O''Brien'", want: true},
		{filter: "lastName eq 'O'''", want: false},
		{filter: "lastName eq 'OBrien'", want: false},
		{filter: "username ne 'x' and externalId eq '00u1'", want: true},
		{filter: "username eq 'x' or emailAddress eq 'ob@example.com'", want: true},
		{filter: "not (username eq 'obrien')", want: false},
		{filter: "not username eq 'x'", want: true},
		{filter: "(username eq 'x' or username eq 'y') and activeStatus eq 1", want: false},
		{filter: "username eq 'x' or (username eq 'obrien' and activeStatus eq 1)", want: true},
		{filter: "activeStatus eq 0", want: false},
		{filter: "activeStatus ge 1", want: true},
		{filter: "departmentId eq guid'0000000A-0000-4000-8000-0000000000D1'", want: true},
		{filter: "id eq guid'0000000a-0000-4000-8000-000000000001' or id eq guid'x'", want: true},
		{filter: "tolower(emailAddress) eq 'ob@example.com'", want: true},
		{filter: "toupper(username) eq 'OBRIEN'", want: true},
		{filter: "startswith(username,'ob')", want: true},
		{filter: "startsWith(lastname,'leb')", want: false},
		{filter: "endswith(emailAddress,'@example.com')", want: true},
		{filter: "substringof('|Sales|',customFields/string30)", want: true},
		{filter: "customFields/string30 eq '|Eng|Sales|'", want: true},
		{filter: "customFields/string1 eq null", want: true},
		{filter: "jobTitle eq null and employeeNumber ne null", want: true},
		{filter: "employeeNumber eq 'E-7'", want: true},
		{filter: "username eq 'a'' or ''1''=''1'", want: false}, // quoting defeats injection
		{filter: "nosuchfield eq 'x'", bad: true},
		{filter: "customFields/string99 eq 'x'", bad: true},
		{filter: "username eq 'unterminated", bad: true},
		{filter: "username eq", bad: true},
		{filter: "(username eq 'x'", bad: true},
		{filter: "username", bad: true},
		{filter: "username eq 'x' and", bad: true},
		{filter: "startswith(username)", bad: true},
		{filter: "username ~ 'x'", bad: true},
		{filter: "money'12' eq 1", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			n, err := parseFilter(tt.filter)
			if err == nil {
				var got bool
				got, err = matches(n, u.field)
				if err == nil {
					if tt.bad {
						t.Fatalf("filter accepted, want an error")
					}
					if got != tt.want {
						t.Fatalf("matches = %v, want %v", got, tt.want)
					}
					return
				}
			}
			if !tt.bad {
				t.Fatalf("unexpected error: %v", err)
			}
			if !errors.Is(err, errFilter) {
				t.Fatalf("error %v is not errFilter", err)
			}
		})
	}
}
