/*
 * The few libsolv calls pbsimage makes, behind plain C functions: the compiler, not Rust,
 * knows libsolv's struct layouts and constants. Built by build.rs against the system
 * libsolv (pkg-config libsolv; Debian's libsolv-dev).
 *
 * The pool is set up as libdnf sets up its sack, and the solver as libdnf's Goal does
 * (libdnf/goal/Goal.cpp, initSolver and constructJob), so that an answer is dnf's answer.
 */
#include <stdlib.h>
#include <string.h>

#include <solv/pool.h>
#include <solv/poolarch.h>
#include <solv/repo.h>
#include <solv/solver.h>
#include <solv/problems.h>
#include <solv/transaction.h>
#include <solv/evr.h>

/* Dependency kinds, as pbsimage numbers them. */
enum {
  PBS_PROVIDES, PBS_REQUIRES, PBS_CONFLICTS, PBS_OBSOLETES,
  PBS_RECOMMENDS, PBS_SUGGESTS, PBS_SUPPLEMENTS, PBS_ENHANCES
};

/* Job kinds. */
enum { PBS_JOB_PROVIDES = 1, PBS_JOB_ONE_OF = 2 };

Pool *pbs_pool_new(const char *arch) {
  Pool *pool = pool_create();
  pool_setdisttype(pool, DISTTYPE_RPM);
  pool_setarch(pool, arch);
  /* As libdnf sets up its sack. */
  pool_set_flag(pool, POOL_FLAG_WHATPROVIDESWITHDISABLED, 1);
  pool_set_flag(pool, POOL_FLAG_IMPLICITOBSOLETEUSESCOLORS, 1);
  return pool;
}

void pbs_pool_free(Pool *pool) { pool_free(pool); }

/* A repository; dnf's priority (lower wins) and cost as libdnf maps them. */
Repo *pbs_repo_new(Pool *pool, const char *name, int priority, int cost) {
  Repo *repo = repo_create(pool, name);
  repo->priority = -priority;
  repo->subpriority = -cost;
  return repo;
}


Id pbs_solvable_new(Repo *repo, const char *name, const char *evr, const char *arch) {
  Pool *pool = repo->pool;
  Id p = repo_add_solvable(repo);
  Solvable *s = pool_id2solvable(pool, p);
  s->name = pool_str2id(pool, name, 1);
  s->evr = pool_str2id(pool, evr, 1);
  s->arch = pool_str2id(pool, arch, 1);
  return p;
}

/* A dependency: `name`, or `name flags evr` (flags: REL_GT 1, REL_EQ 2, REL_LT 4). */
Id pbs_dep_atom(Pool *pool, const char *name, int flags, const char *evr) {
  Id id = pool_str2id(pool, name, 1);
  if (flags && evr)
    id = pool_rel2id(pool, id, pool_str2id(pool, evr, 1), flags, 1);
  return id;
}

/* The operators of rich dependencies, as pbsimage numbers them. Rust parses `(...)`
 * (resolve/rich.rs) and builds the expression with these, as libsolv's own rpm rich-dep
 * parser does: `(a if b else c)` is COND(a, ELSE(b, c)). */
enum { PBS_AND, PBS_OR, PBS_WITH, PBS_WITHOUT, PBS_IF, PBS_UNLESS, PBS_ELSE };

Id pbs_dep_rel(Pool *pool, Id a, Id b, int op) {
  static const int rel[] = {REL_AND, REL_OR, REL_WITH, REL_WITHOUT, REL_COND, REL_UNLESS, REL_ELSE};
  if (op < 0 || op > PBS_ELSE || !a || !b)
    return 0;
  return pool_rel2id(pool, a, b, rel[op], 1);
}

/* Appends `s` and a newline to the growing string *out (length *len, capacity *cap). */
static void append_line(char **out, size_t *len, size_t *cap, const char *s) {
  size_t l = strlen(s);
  if (*len + l + 2 > *cap) {
    *cap = (*len + l + 2) * 2;
    *out = solv_realloc(*out, *cap);
  }
  memcpy(*out + *len, s, l);
  *len += l;
  (*out)[(*len)++] = '\n';
  (*out)[*len] = 0;
}

/* Adds the dependency `id` (from pbs_dep_atom / pbs_dep_rel) of `kind` to solvable p. */
int pbs_solvable_dep(Repo *repo, Id p, int kind, Id id, int pre) {
  Pool *pool = repo->pool;
  Solvable *s = pool_id2solvable(pool, p);
  if (!id)
    return 0;
  switch (kind) {
  case PBS_PROVIDES: s->provides = repo_addid_dep(repo, s->provides, id, 0); break;
  case PBS_REQUIRES:
    s->requires = repo_addid_dep(repo, s->requires, id, pre ? SOLVABLE_PREREQMARKER : -SOLVABLE_PREREQMARKER);
    break;
  case PBS_CONFLICTS: s->conflicts = repo_addid_dep(repo, s->conflicts, id, 0); break;
  case PBS_OBSOLETES: s->obsoletes = repo_addid_dep(repo, s->obsoletes, id, 0); break;
  case PBS_RECOMMENDS: s->recommends = repo_addid_dep(repo, s->recommends, id, 0); break;
  case PBS_SUGGESTS: s->suggests = repo_addid_dep(repo, s->suggests, id, 0); break;
  case PBS_SUPPLEMENTS: s->supplements = repo_addid_dep(repo, s->supplements, id, 0); break;
  case PBS_ENHANCES: s->enhances = repo_addid_dep(repo, s->enhances, id, 0); break;
  default: return 0;
  }
  return 1;
}

/* Every package provides itself (name = evr), as rpm and createrepo have it. */
void pbs_solvable_self_provide(Repo *repo, Id p) {
  Pool *pool = repo->pool;
  Solvable *s = pool_id2solvable(pool, p);
  s->provides = repo_addid_dep(repo, s->provides, pool_rel2id(pool, s->name, s->evr, REL_EQ, 1), 0);
}

void pbs_repo_done(Repo *repo) { repo_internalize(repo); }

/* Required files are provides already (their owners, from primary.xml's and filelists.xml's
 * lists): no repodata file lists for pool_addfileprovides to search. */
void pbs_pool_ready(Pool *pool) { pool_createwhatprovides(pool); }

/* A solver result: the solvables to install, or problem texts joined by '\n'. */
typedef struct {
  Id *install;
  int ninstall;
  char *problems;
} PbsResult;

static void push_job(Pool *pool, Queue *job, int kind, Id dep, const Id *ids, int nids, int best) {
  /* libdnf's GoalPrivate::add_install: the chosen package's arch and evr are set, which
   * lifts the infarch rule for it (an i686 package alone on x86_64). */
  Id how = SOLVER_INSTALL | SOLVER_SETARCH | SOLVER_SETEVR | (best ? SOLVER_FORCEBEST : 0);
  switch (kind) {
  case PBS_JOB_PROVIDES:
    queue_push2(job, how | SOLVER_SOLVABLE_PROVIDES, dep);
    break;
  default: {
    /* Any of these packages (dnf's selector of a package set). */
    Queue q;
    queue_init(&q);
    for (int i = 0; i < nids; i++)
      if (ids[i] > 0 && ids[i] < pool->nsolvables)
        queue_push(&q, ids[i]);
    queue_push2(job, how | SOLVER_SOLVABLE_ONE_OF, pool_queuetowhatprovides(pool, &q));
    queue_free(&q);
  }
  }
}

/* Solves for jobs (kinds[i], deps[i], and for a package set the ids
 * ids[starts[i]..starts[i]+lens[i]]); weak: take Recommends. */
PbsResult *pbs_solve(Pool *pool, int n, const int *kinds, const Id *deps, const Id *ids,
                     const int *starts, const int *lens, int best, int weak) {
  PbsResult *r = solv_calloc(1, sizeof(PbsResult));
  Queue job;
  queue_init(&job);
  for (int i = 0; i < n; i++)
    push_job(pool, &job, kinds[i], deps[i], ids + starts[i], lens[i], best);
  Solver *solv = solver_create(pool);
  solver_set_flag(solv, SOLVER_FLAG_ALLOW_VENDORCHANGE, 1);
  solver_set_flag(solv, SOLVER_FLAG_DUP_ALLOW_VENDORCHANGE, 1);
  solver_set_flag(solv, SOLVER_FLAG_KEEP_ORPHANS, 1);
  solver_set_flag(solv, SOLVER_FLAG_BEST_OBEY_POLICY, 1);
  solver_set_flag(solv, SOLVER_FLAG_YUM_OBSOLETES, 1);
  if (!weak)
    solver_set_flag(solv, SOLVER_FLAG_IGNORE_RECOMMENDED, 1);
  int nproblems = solver_solve(solv, &job);
  if (nproblems) {
    size_t len = 0, cap = 256;
    char *out = solv_malloc(cap);
    out[0] = 0;
    for (Id pr = 1; pr <= nproblems; pr++) {
      Queue rules;
      queue_init(&rules);
      solver_findallproblemrules(solv, pr, &rules);
      for (int i = 0; i < rules.count; i++) {
        Id source, target, dep;
        SolverRuleinfo type = solver_ruleinfo(solv, rules.elements[i], &source, &target, &dep);
        append_line(&out, &len, &cap, solver_problemruleinfo2str(solv, type, source, target, dep));
      }
      queue_free(&rules);
    }
    r->problems = out;
  } else {
    Transaction *trans = solver_create_transaction(solv);
    Queue inst;
    queue_init(&inst);
    for (int i = 0; i < trans->steps.count; i++) {
      Id p = trans->steps.elements[i];
      Id type = transaction_type(trans, p, SOLVER_TRANSACTION_SHOW_ACTIVE | SOLVER_TRANSACTION_SHOW_ALL);
      if (type == SOLVER_TRANSACTION_INSTALL || type == SOLVER_TRANSACTION_MULTIINSTALL)
        queue_push(&inst, p);
    }
    r->install = solv_memdup2(inst.elements, inst.count, sizeof(Id));
    r->ninstall = inst.count;
    queue_free(&inst);
    transaction_free(trans);
  }
  solver_free(solv);
  queue_free(&job);
  return r;
}

void pbs_result_free(PbsResult *r) {
  solv_free(r->install);
  solv_free(r->problems);
  solv_free(r);
}

/* The distinct file paths solvables require or recommend (unversioned): what libsolv's
 * addfileprovides looks up in file lists. One string, paths separated by '\n'; NULL if none.
 * No whatprovides is needed: only the dependency arrays are read. */
char *pbs_pool_file_requires(Pool *pool) {
  Map seen;
  map_init(&seen, pool->ss.nstrings);
  size_t len = 0, cap = 0;
  char *out = 0;
  for (Id p = 2; p < pool->nsolvables; p++) {
    Solvable *s = pool->solvables + p;
    if (!s->repo)
      continue;
    Offset lists[2] = {s->requires, s->recommends};
    for (int k = 0; k < 2; k++) {
      if (!lists[k])
        continue;
      for (Id *dp = s->repo->idarraydata + lists[k]; *dp; dp++) {
        Id d = *dp;
        if (d == SOLVABLE_PREREQMARKER || ISRELDEP(d) || d >= pool->ss.nstrings || MAPTST(&seen, d))
          continue;
        const char *name = pool_id2str(pool, d);
        if (name[0] != '/')
          continue;
        MAPSET(&seen, d);
        append_line(&out, &len, &cap, name);
      }
    }
  }
  map_free(&seen);
  return out;
}

void pbs_free(void *p) { solv_free(p); }

/* Lets solvable p provide the file `path` (an owner found in filelists.xml). */
void pbs_solvable_provide_file(Pool *pool, Id p, const char *path) {
  if (p <= 1 || p >= pool->nsolvables)
    return;
  Solvable *s = pool_id2solvable(pool, p);
  s->provides = repo_addid_dep(s->repo, s->provides, pool_str2id(pool, path, 1), 0);
}
