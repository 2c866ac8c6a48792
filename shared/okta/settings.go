package okta

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/learnerlink/learnerlink/shared/config"
)

// FromSettings builds the client the settings describe, or returns nil when
// no Okta org is configured.
func FromSettings(s config.Okta, hc *http.Client, log *slog.Logger) (*Client, error) {
	if s.OrgURL == "" {
		return nil, nil
	}
	cfg := Config{OrgURL: s.OrgURL, HTTPClient: hc, Logger: log}
	switch {
	case s.APIToken != "":
		cfg.APIToken = s.APIToken
	case s.ClientID != "" && s.PrivateKey != "":
		cfg.OAuth = &OAuth{ClientID: s.ClientID, PrivateKeyPEM: s.PrivateKey, KeyID: s.KeyID}
	default:
		return nil, errors.New("okta: OKTA_ORG_URL is set but there are no Okta credentials (an API token, or an OAuth client id and private key)")
	}
	return New(cfg)
}
