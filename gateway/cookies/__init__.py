"""Cookies: declared lifetimes, RFC 6265 Set-Cookie handling and the cookie catalog."""
