package filter

import "testing"

func benchFilters() []struct{ name, filter string } {
	return []struct{ name, filter string }{
		{"equality", `userName eq "jane.doe@example.com"`},
		{"complex", `userType eq "Employee" and (emails[type eq "work" and value co "@example.com"] or not (title pr)) and urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr`},
	}
}

func BenchmarkParse(b *testing.B) {
	for _, bf := range benchFilters() {
		b.Run(bf.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bf.filter); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMatches(b *testing.B) {
	user := decode(b, oktaUserJSON, false)
	for _, bf := range benchFilters() {
		f, err := Parse(bf.filter)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bf.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !f.Matches(user, nil) {
					b.Fatal("want match")
				}
			}
		})
	}
}
