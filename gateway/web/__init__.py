"""HTTP endpoints of the gateway; each module builds its routes from the wired ``GatewayContext``."""
