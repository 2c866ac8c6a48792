package oktasim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// checkAssertion validates a client assertion JWT the way Okta describes
// (https://developer.okta.com/docs/api/oauth2/#token-claims-for-client-authentication-with-client-secret-or-private-key-jwt):
// iss and sub are the client id, aud the token endpoint, exp in the future
// and at most an hour after iat, jti not seen before. Callers hold s.mu.
func (s *Sim) checkAssertion(jwt, aud string) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return errors.New("client_assertion is not a JWS compact serialization")
	}
	var header struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
		Iat int64  `json:"iat"`
		Jti string `json:"jti"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return fmt.Errorf("client_assertion header: %w", err)
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return fmt.Errorf("client_assertion claims: %w", err)
	}
	hash, ok := map[string]crypto.Hash{
		"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512,
		"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512,
	}[header.Alg]
	if !ok {
		return fmt.Errorf("client_assertion alg %q is not supported", header.Alg)
	}
	now := s.opts.Now()
	switch {
	case claims.Iss != s.opts.ClientID || claims.Sub != s.opts.ClientID:
		return errors.New("The client_assertion token has an invalid iss or sub claim")
	case claims.Aud != aud:
		return errors.New("The audience claim for client_assertion must be the endpoint invoking the client_assertion")
	case claims.Exp <= now.Unix():
		return errors.New("The client_assertion token is expired")
	case claims.Iat > now.Add(time.Minute).Unix() || claims.Exp-claims.Iat > 3600:
		return errors.New("The client_assertion token has an invalid iat or exp")
	case claims.Jti == "":
		return errors.New("The client_assertion token has no jti")
	}
	if _, seen := s.jtis[claims.Jti]; seen {
		return errors.New("The client_assertion token has already been used (jti)")
	}
	if s.opts.PublicKey != nil {
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			return errors.New("client_assertion signature is not base64url")
		}
		if err := verify(s.opts.PublicKey, hash, header.Alg, []byte(parts[0]+"."+parts[1]), sig); err != nil {
			return err
		}
	}
	for j, exp := range s.jtis {
		if now.After(exp) {
			delete(s.jtis, j)
		}
	}
	s.jtis[claims.Jti] = time.Unix(claims.Exp, 0)
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errors.New("not a JSON object")
	}
	return nil
}

func verify(pub crypto.PublicKey, hash crypto.Hash, alg string, signed, sig []byte) error {
	h := hash.New()
	h.Write(signed)
	digest := h.Sum(nil)
	bad := errors.New("The client_assertion signature is invalid")
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if !strings.HasPrefix(alg, "RS") || rsa.VerifyPKCS1v15(k, hash, digest, sig) != nil {
			return bad
		}
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if !strings.HasPrefix(alg, "ES") || len(sig) != 2*size {
			return bad
		}
		r, sv := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, digest, r, sv) {
			return bad
		}
	default:
		return errors.New("oktasim: unsupported public key type")
	}
	return nil
}
