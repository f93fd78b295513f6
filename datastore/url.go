package datastore

import (
	"net/url"
	"strings"
)

// redact returns u as a string, without the values of the query
// parameters whose names look secret, nor user information. Parameters are
// kept as written rather than re-encoded, so that an endpoint reads as
// such.
func redact(u *url.URL) string {
	r := *u
	r.User = nil
	r.Fragment, r.RawFragment = "", ""
	var params []string
	for p := range strings.SplitSeq(u.RawQuery, "&") {
		if name, _, ok := strings.Cut(p, "="); ok && looksSecret(name) {
			p = name + "=REDACTED"
		}
		if p != "" {
			params = append(params, p)
		}
	}
	r.RawQuery = strings.Join(params, "&")
	return r.String()
}
