-- POST /auth/login/ with the seeded admin (credentials from the environment).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["authorizationMethod"] = "JWT"
wrk.body = string.format('{"username": "%s", "password": "%s"}', os.getenv("BENCH_USER"), os.getenv("BENCH_PASSWORD"))
