/* Where a program is looked for: the paths the sandbox's child tries in
 * order, computed before the clone (the child may not allocate). As
 * execvpe does, but never in an empty or relative PATH entry. Pure. */
#ifndef ESB_ENGINE_EXEC_PATH_H
#define ESB_ENGINE_EXEC_PATH_H

/* PATH of env (NULL-terminated "K=V"), else "/usr/local/bin:/usr/bin:/bin". */
const char *esb_env_path(const char *const *env);

/* prog with a '/' as is; otherwise prog under every absolute entry of path.
 * NULL-terminated, freed with esb_strv_free; NULL when out of memory. */
char **esb_exec_candidates(const char *prog, const char *path);

#endif
