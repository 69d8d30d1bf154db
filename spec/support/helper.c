/* esb-spec-helper: small behaviours the specs need on both sides of the
 * sandbox, without depending on which interpreters a machine has.
 *
 *   esb-spec-helper listen PORTFILE       accept TCP connections on 127.0.0.1 (free port
 *                                         written to PORTFILE), answer "hello\n", forever
 *   esb-spec-helper connect PORT          exit 0 if 127.0.0.1:PORT accepts, 1 if not
 *   esb-spec-helper flood BYTES           write BYTES bytes of 'x' to stdout
 *   esb-spec-helper bytes HEX...          write the given bytes to stdout
 *   esb-spec-helper alloc MIB             allocate and touch MIB MiB; exit 0 if it could
 *   esb-spec-helper kill SIGNAL           kill itself with SIGNAL
 *   esb-spec-helper fds                   print the fds open in this process
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int cmd_listen(const char *portfile) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0 ||
      getsockname(s, (struct sockaddr *)&a, &len) < 0) {
    perror("listen");
    return 1;
  }
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", portfile);
  FILE *f = fopen(tmp, "w");
  if (!f) { perror(tmp); return 1; }
  fprintf(f, "%d\n", ntohs(a.sin_port));
  fclose(f);
  rename(tmp, portfile);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    (void)!write(c, "hello\n", 6);
    close(c);
  }
}

static int cmd_connect(const char *port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port)),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
    perror("connect");
    return 1;
  }
  char buf[16];
  ssize_t n = read(s, buf, sizeof buf);
  if (n > 0) fwrite(buf, 1, (size_t)n, stdout);
  return 0;
}

static int cmd_flood(const char *count) {
  long long left = atoll(count);
  static char buf[65536];
  memset(buf, 'x', sizeof buf);
  while (left > 0) {
    ssize_t n = write(1, buf, left < (long long)sizeof buf ? (size_t)left : sizeof buf);
    if (n <= 0) return 1;
    left -= n;
  }
  return 0;
}

static int cmd_bytes(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    unsigned char b = (unsigned char)strtoul(argv[i], NULL, 16);
    (void)!write(1, &b, 1);
  }
  return 0;
}

static int cmd_alloc(const char *mib) {
  size_t n = (size_t)atoll(mib) << 20;
  char *p = malloc(n);
  if (!p) {
    fprintf(stderr, "alloc: cannot allocate %s MiB\n", mib);
    return 3;
  }
  for (size_t i = 0; i < n; i += 4096) p[i] = 1;
  printf("allocated %s MiB\n", mib);
  return 0;
}

static int cmd_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d)) printf("%s\n", e->d_name);
  if (d) closedir(d);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "listen")) return cmd_listen(argv[2]);
  if (argc >= 3 && !strcmp(argv[1], "connect")) return cmd_connect(argv[2]);
  if (argc >= 3 && !strcmp(argv[1], "flood")) return cmd_flood(argv[2]);
  if (argc >= 2 && !strcmp(argv[1], "bytes")) return cmd_bytes(argc - 2, argv + 2);
  if (argc >= 3 && !strcmp(argv[1], "alloc")) return cmd_alloc(argv[2]);
  if (argc >= 3 && !strcmp(argv[1], "kill")) { raise(atoi(argv[2])); return 0; }
  if (argc >= 2 && !strcmp(argv[1], "fds")) return cmd_fds();
  fprintf(stderr, "usage: esb-spec-helper listen|connect|flood|bytes|alloc|kill|fds ...\n");
  return 2;
}
