"""pywrap: tcp_wrappers' tcpd, tcpdmatch and tcpdchk in Python.

Importing the package costs nothing: every module imports only what its job needs, and the heavy
dependencies (pyparsing, dnspython) are imported only where and when they are used.
"""

__version__ = "0.1.0"

__all__ = ["AccessRequest", "LibVerdict", "WrappedServerMixin", "hosts_ctl", "wrap_asyncio"]


def __getattr__(name: str):
    """The library API, imported on first use (tcpd itself never pays for it)."""
    if name in ("AccessRequest", "LibVerdict", "hosts_ctl"):
        from pywrap import libwrap

        return getattr(libwrap, name)
    if name in ("WrappedServerMixin", "wrap_asyncio"):
        from pywrap import servers

        return getattr(servers, name)
    raise AttributeError(name)
