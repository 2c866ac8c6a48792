package okta

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	// assertionLifetime is the client assertion's exp - iat; Okta accepts
	// at most one hour.
	assertionLifetime = 5 * time.Minute
	// tokenSkew renews the access token this long before it expires, so a
	// request never leaves with a token that dies in flight.
	tokenSkew = time.Minute
)

// oauthSource gets and caches access tokens with the client credentials
// grant and a private-key JWT (RFC 7523) client assertion.
type oauthSource struct {
	clientID, keyID, scopes, tokenURL string
	key                               crypto.Signer

	mu      sync.Mutex // held while fetching: concurrent callers share one fetch
	access  string
	expires time.Time
}

func (o *oauthSource) invalidate() {
	o.mu.Lock()
	o.access = ""
	o.mu.Unlock()
}

func (o *oauthSource) token(ctx context.Context, c *Client) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := c.cfg.Now()
	if o.access != "" && now.Before(o.expires.Add(-tokenSkew)) {
		return o.access, nil
	}
	assertion, err := o.assertion(now)
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {o.scopes},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("okta: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("okta: token request: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("okta: token request: %w", readAPIError(resp))
	}
	defer func() { _ = resp.Body.Close() }()
	var tr struct {
		TokenType   string `json:"token_type"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&tr); err != nil {
		return "", fmt.Errorf("okta: token response: %w", err)
	}
	if tr.AccessToken == "" || !strings.EqualFold(tr.TokenType, "Bearer") {
		// A DPoP-bound token (the app requires DPoP) is not supported.
		return "", fmt.Errorf("okta: token response has no Bearer access token (token_type %q); turn off \"Require DPoP\" for the service app", tr.TokenType)
	}
	if tr.ExpiresIn <= 0 {
		tr.ExpiresIn = 3600
	}
	o.access = tr.AccessToken
	o.expires = now.Add(time.Duration(tr.ExpiresIn) * time.Second)
	return o.access, nil
}

// assertion builds and signs the client assertion JWT.
func (o *oauthSource) assertion(now time.Time) (string, error) {
	alg, hash, err := jwsAlg(o.key)
	if err != nil {
		return "", err
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	header := map[string]string{"alg": alg, "typ": "JWT"}
	if o.keyID != "" {
		header["kid"] = o.keyID
	}
	claims := map[string]any{
		"iss": o.clientID, "sub": o.clientID, "aud": o.tokenURL,
		"iat": now.Unix(), "exp": now.Add(assertionLifetime).Unix(),
		"jti": hex.EncodeToString(jti[:]),
	}
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	signing := b64(hb) + "." + b64(cb)
	h := hash.New()
	h.Write([]byte(signing))
	digest := h.Sum(nil)
	var sig []byte
	switch k := o.key.(type) {
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, hash, digest)
	case *ecdsa.PrivateKey:
		// JWS wants r||s, each padded to the curve size, not ASN.1.
		r, s, e := ecdsa.Sign(rand.Reader, k, digest)
		size := (k.Curve.Params().BitSize + 7) / 8
		sig, err = make([]byte, 2*size), e
		if e == nil {
			r.FillBytes(sig[:size])
			s.FillBytes(sig[size:])
		}
	}
	if err != nil {
		return "", fmt.Errorf("okta: sign client assertion: %w", err)
	}
	return signing + "." + b64(sig), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jwsAlg(k crypto.Signer) (string, crypto.Hash, error) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return "RS256", crypto.SHA256, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", crypto.SHA256, nil
		case elliptic.P384():
			return "ES384", crypto.SHA384, nil
		case elliptic.P521():
			return "ES512", crypto.SHA512, nil
		}
	}
	return "", 0, errors.New("okta: the private key must be RSA or ECDSA P-256/384/521")
}

// parsePrivateKey reads a PEM private key. Errors never include the key.
func parsePrivateKey(s string) (crypto.Signer, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "\n") {
		s = strings.ReplaceAll(s, `\n`, "\n")
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("okta: OAuth.PrivateKeyPEM is not a PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("okta: OAuth.PrivateKeyPEM: unsupported PEM type %q", block.Type)
	}
	if err != nil {
		return nil, errors.New("okta: OAuth.PrivateKeyPEM: cannot parse the private key")
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("okta: OAuth.PrivateKeyPEM: not a signing key")
	}
	if _, _, err := jwsAlg(signer); err != nil {
		return nil, err
	}
	return signer, nil
}
