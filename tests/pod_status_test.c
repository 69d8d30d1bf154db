/* What the k8s backend reads out of a Pod or a watch event
 * (src/codec/pod_status.c over lua/echo_sandbox/engine/kube.lua). */
#include "codec/pod_status.h"

#include <string.h>

#include "tap.h"

static int parse(const char *json, struct esb_pod_status *st) {
  return esb_lua_parse_pod_status(json, strlen(json), st);
}

int main(void) {
  struct esb_pod_status st;
  is_int(parse("{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p1\"},"
               "\"spec\":{\"containers\":[{\"image\":\"python:3\"}]},"
               "\"status\":{\"phase\":\"Failed\",\"containerStatuses\":[{\"state\":{\"terminated\":"
               "{\"exitCode\":137,\"reason\":\"OOMKilled\"}}}]}}}", &st), 0, "a watch event");
  is_str(st.event, "MODIFIED", "its type");
  is_str(st.phase, "Failed", "the phase");
  ok(st.terminated, "terminated");
  is_int(st.exit_code, 137, "the container's exit code");
  is_str(st.reason, "OOMKilled", "the container's reason");
  is_str(st.name, "p1", "the pod's name");
  is_str(st.image, "python:3", "the first container's image");

  is_int(parse("{\"kind\":\"Pod\",\"status\":{\"phase\":\"Pending\",\"containerStatuses\":[{\"state\":"
               "{\"waiting\":{\"reason\":\"ErrImagePull\",\"message\":\"not found\"}}}],"
               "\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"False\",\"reason\":\"Unschedulable\","
               "\"message\":\"0/1 nodes\"}]}}", &st), 0, "a pod, not an event");
  is_str(st.event, "", "has no event type");
  is_str(st.waiting_reason, "ErrImagePull", "the waiting reason");
  is_str(st.message, "ErrImagePull: not found", "a waiting reason makes the message");
  ok(st.unschedulable, "unschedulable");
  ok(!st.terminated, "not terminated");

  is_int(parse("{\"kind\":\"Pod\",\"status\":{\"containerStatuses\":[{\"state\":{\"waiting\":"
               "{\"reason\":\"ContainerCreating\"}}}],\"conditions\":[{\"status\":\"False\",\"message\":\"m\"}]}}",
               &st), 0, "a pod being created");
  is_str(st.message, "m", "ContainerCreating is no message; a condition's is");
  is_str(st.phase, "", "no phase is empty");

  is_int(parse("{\"kind\":\"Service\"}", &st), -1, "not a pod");
  is_int(parse("[1,2]", &st), -1, "not an object");
  is_int(parse("{\"kind\":", &st), -1, "not JSON");
  is_int(parse("{\"kind\":\"Pod\",\"status\":{\"phase\":7,\"containerStatuses\":{}}}", &st), 0,
         "odd types are not errors");
  is_str(st.phase, "", "a phase that is no string is empty");
  return tap_done();
}
