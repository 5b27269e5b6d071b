"""A small authoritative DNS responder on 127.0.0.1 for the reverse DNS
tests: UDP on a free port, answered from a thread, built on Debian's
python3-dnspython. Nothing leaves the machine.

    with DNSResponder() as dns:
        dns.add("1.0.0.127.in-addr.arpa", "PTR", "mail.client.test.")
        dns.add("mail.client.test", "A", "127.0.0.1")
        ... [server] resolver = dns.address ...
        dns.queries      # [(name, type)] in arrival order

A name with no records is NXDOMAIN; a known name asked for a type it lacks
gets an empty NOERROR (NODATA). `silent=True` reads every query and never
answers (a dead resolver). `delay` holds each answer back that long.
"""

import socket
import threading
import time

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.PTR
import dns.reversename
import dns.rrset


def reverse_name(ip):
    """'127.0.0.1' -> '1.0.0.127.in-addr.arpa' (ip6.arpa for IPv6)."""
    return dns.reversename.from_address(ip).to_text(omit_final_dot=True)


class DNSResponder:
    def __init__(self, silent=False, delay=0.0, family=socket.AF_INET):
        self.silent = silent
        self.delay = delay
        self.family = family
        self.host = "127.0.0.1" if family == socket.AF_INET else "::1"
        self.records = {}           # (name, rdtype) -> [rdata]
        self.queries = []
        self.lock = threading.Lock()
        self.sock = None
        self.thread = None
        self.stopping = threading.Event()

    # ---- records

    @staticmethod
    def _key_name(name):
        if isinstance(name, dns.name.Name):
            return name.canonicalize()
        return dns.name.from_text(name).canonicalize()

    def add(self, name, rdtype, *values):
        """Records from their text form: add('x.test', 'A', '127.0.0.1')."""
        t = dns.rdatatype.from_text(rdtype)
        rds = [dns.rdata.from_text(dns.rdataclass.IN, t, v) for v in values]
        with self.lock:
            self.records.setdefault((self._key_name(name), t), []).extend(rds)

    def add_raw_ptr(self, name, labels):
        """A PTR whose target is made of raw byte labels, which may hold what
        no host name can (spaces, CR LF, dots inside a label)."""
        target = dns.name.Name(list(labels) + [b""])
        rd = dns.rdtypes.ANY.PTR.PTR(dns.rdataclass.IN, dns.rdatatype.PTR, target)
        with self.lock:
            self.records.setdefault((self._key_name(name), dns.rdatatype.PTR), []).append(rd)

    # ---- the server

    @property
    def address(self):
        """The `[server] resolver` value that names this responder."""
        if self.family == socket.AF_INET:
            return f"{self.host}:{self.port}"
        return f"[{self.host}]:{self.port}"

    def count(self, rdtype=None):
        with self.lock:
            return sum(1 for _, t in self.queries if rdtype is None or t == rdtype)

    def names_asked(self, rdtype):
        with self.lock:
            return [n for n, t in self.queries if t == rdtype]

    def start(self):
        self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, name="dnsutil", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        if self.sock is not None:
            self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
                q = query.question[0]
            except Exception:          # not ours to judge: drop it
                continue
            with self.lock:
                self.queries.append((q.name.to_text(omit_final_dot=True).lower(),
                                     dns.rdatatype.to_text(q.rdtype)))
            if self.silent:
                continue
            if self.delay:
                time.sleep(self.delay)
            try:
                self.sock.sendto(self._answer(query, q).to_wire(), peer)
            except OSError:
                pass

    def _answer(self, query, q):
        resp = dns.message.make_response(query)   # the question as asked (0x20 case)
        resp.flags |= dns.flags.AA | dns.flags.RA
        key = self._key_name(q.name)
        with self.lock:
            rds = list(self.records.get((key, q.rdtype), []))
            known = any(n == key for n, _ in self.records)
        if not known:
            resp.set_rcode(dns.rcode.NXDOMAIN)
            return resp
        if rds:
            rrset = dns.rrset.RRset(q.name, dns.rdataclass.IN, q.rdtype)
            for rd in rds:
                rrset.add(rd, 60)
            resp.answer.append(rrset)
        return resp
