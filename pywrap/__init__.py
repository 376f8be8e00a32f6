"""pywrap: tcp_wrappers' tcpd, tcpdmatch and tcpdchk in Python.

Importing the package costs nothing: every module imports only what its job needs, and the heavy
dependencies (pyparsing, dnspython) are imported only where and when they are used.
"""

__version__ = "0.1.0"
