# The network specs' test host: HTTP on 80 and HTTPS on 443 (argv[1]: a
# directory with cert.pem and key.pem; argv[2]: the file made once both
# listen). Each answer is "<scheme> <Host> <path>\n" (GET /big: 1 MiB);
# with argv[3], a file holding a secret, it ends " auth=[...]": each
# Authorization header the request had, "secret" for one that is the
# secret's value, so that the value itself never goes back.
import http.server, os, socketserver, ssl, sys, threading

secret = open(sys.argv[3]).read().rstrip("\n") if len(sys.argv) > 3 else None


class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        line = "%s %s %s" % (self.server.scheme, self.headers.get("Host"), self.path)
        if secret is not None:
            seen = ["secret" if v == secret else v for v in self.headers.get_all("Authorization") or []]
            line += " auth=[%s]" % ",".join(seen)
        if self.headers.get("Proxy-Authorization") is not None:  # a proxy's credentials: never a host's to see
            line += " proxy-authorization!"
        body = (line + "\n").encode()
        if self.path == "/big":
            body = b"x" * (1 << 20)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


plain, tls = S(("0.0.0.0", 80), H), S(("0.0.0.0", 443), H)
plain.scheme, tls.scheme = "http", "https"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(sys.argv[1], "cert.pem"), os.path.join(sys.argv[1], "key.pem"))
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=tls.serve_forever, daemon=True).start()
open(sys.argv[2], "w").close()
plain.serve_forever()
