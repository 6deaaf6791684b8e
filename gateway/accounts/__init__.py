"""Dashboard accounts: users with scrypt-hashed passwords and a role per site (owner, viewer)."""
