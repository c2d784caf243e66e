-- wrk script: POST the same ~1 KB JSON body hookd's bench jobs carry.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"success":true,"callData":{"id":"call_x","duration":180,"summary":"' ..
           string.rep("x", 800) .. '","metricJson":{"confidence":0.95}}}'
