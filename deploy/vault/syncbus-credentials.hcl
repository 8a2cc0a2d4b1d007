# The credential service's Vault policy: it reads integration secrets, and nothing else.
# No other syncbus service has a Vault policy at all: they get credentials from this service.
#
# KV v2 mounted at `secret/`: data lives under secret/data/..., versions under secret/metadata/...
# (the service checks the metadata to notice a rotation without re-reading the secret).

path "secret/data/integrations/*" {
  capabilities = ["read"]
}

path "secret/metadata/integrations/*" {
  capabilities = ["read"]
}

# Its own token: look itself up (is it still valid?) and renew itself before it expires.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}
