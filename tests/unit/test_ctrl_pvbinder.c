/* The PersistentVolume binder in the simulation: matching by capacity
 * (smallest fit), access modes, storage class, volume mode and selector;
 * pre-bound claims and volumes; one volume for one claim; release and
 * deletion by reclaim policy; lost claims. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/ctrl_sim.h"

static const struct ctrl_ops *const ops[] = {&ctrl_pvbinder_ops, NULL};

/* ------------------------------------------------------------ helpers */

/* A hostPath volume; @extra: more spec lines (indented 2). */
static void add_pv(struct ctrl_sim *s, const char *name, const char *size, const char *modes,
		   const char *cls, const char *extra)
{
	assert_int_equal(ctrl_sim_apply_yamlf(s,
		 "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: %s\n"
		 "spec:\n  capacity:\n    storage: %s\n  accessModes: %s\n"
		 "  storageClassName: \"%s\"\n  hostPath:\n    path: /srv/%s\n%s",
		 name, size, modes, cls, name, extra ? extra : ""),
			 0);
}

/* A claim; @cls NULL leaves storageClassName out; @extra: more spec
 * lines (indented 2). */
static void add_pvc(struct ctrl_sim *s, const char *name, const char *size, const char *modes,
		    const char *cls, const char *extra)
{
	char yaml[2048], cls_line[128] = "";

	if (cls)
		snprintf(cls_line, sizeof(cls_line), "  storageClassName: \"%s\"\n", cls);
	snprintf(yaml, sizeof(yaml),
		 "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: %s\n"
		 "  namespace: default\nspec:\n  accessModes: %s\n%s"
		 "  resources:\n    requests:\n      storage: %s\n%s",
		 name, modes, cls_line, size, extra ? extra : "");
	assert_int_equal(ctrl_sim_apply_yaml(s, yaml), 0);
}

static json_t *get_pv(struct ctrl_sim *s, const char *name)
{
	return ctrl_sim_get(s, "persistentvolumes", NULL, name);
}

static json_t *get_pvc(struct ctrl_sim *s, const char *name)
{
	return ctrl_sim_get(s, "persistentvolumeclaims", "default", name);
}

/* The claim's volumeName and phase. */
static void assert_claim(struct ctrl_sim *s, const char *claim, const char *volume,
			 const char *phase)
{
	json_t *c = get_pvc(s, claim);

	assert_non_null(c);
	if (volume)
		assert_string_equal(ctrl_str(c, "spec.volumeName") ? ctrl_str(c, "spec.volumeName")
								   : "(none)",
				    volume);
	else
		assert_null(ctrl_str(c, "spec.volumeName"));
	assert_string_equal(ctrl_str(c, "status.phase"), phase);
	json_decref(c);
}

static void assert_volume(struct ctrl_sim *s, const char *volume, const char *claim,
			  const char *phase)
{
	json_t *v = get_pv(s, volume);

	assert_non_null(v);
	if (claim) {
		assert_non_null(ctrl_str(v, "spec.claimRef.name"));
		assert_string_equal(ctrl_str(v, "spec.claimRef.name"), claim);
	} else {
		assert_null(ctrl_sim_path(v, "spec.claimRef"));
	}
	assert_string_equal(ctrl_str(v, "status.phase"), phase);
	json_decref(v);
}

/* ------------------------------------------------------------ tests */

/* A fitting volume binds both ways, with Kubernetes' fields. */
static void binds_fitting_volume(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	add_pv(s, "pv1", "5Gi", "[ReadWriteOnce]", "", NULL);
	add_pvc(s, "data", "3Gi", "[ReadWriteOnce]", "", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);

	json_t *pvc = get_pvc(s, "data"), *pv = get_pv(s, "pv1");
	assert_string_equal(ctrl_str(pv, "spec.claimRef.namespace"), "default");
	assert_string_equal(ctrl_str(pv, "spec.claimRef.name"), "data");
	assert_string_equal(ctrl_str(pv, "spec.claimRef.kind"), "PersistentVolumeClaim");
	assert_string_equal(ctrl_str(pv, "spec.claimRef.uid"), ctrl_str(pvc, "metadata.uid"));
	assert_string_equal(ctrl_str(pv, "status.phase"), "Bound");
	assert_string_equal(ctrl_str(pvc, "spec.volumeName"), "pv1");
	assert_string_equal(ctrl_str(pvc, "status.phase"), "Bound");
	assert_string_equal(ctrl_str(pvc, "status.capacity.storage"), "5Gi");
	assert_string_equal(json_string_value(ctrl_sim_path(pvc, "status.accessModes.0")),
			    "ReadWriteOnce");
	json_t *ann = ctrl_sim_path(pvc, "metadata.annotations");
	assert_string_equal(json_string_value(json_object_get(ann, "pv.kubernetes.io/bind-completed")),
			    "yes");
	assert_string_equal(
		json_string_value(json_object_get(ann, "pv.kubernetes.io/bound-by-controller")), "yes");
	json_decref(pvc);
	json_decref(pv);
	ctrl_sim_free(s);
}

/* Unbound volumes become Available; the smallest that fits wins. */
static void smallest_fit(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	add_pv(s, "big", "10Gi", "[ReadWriteOnce]", "", NULL);
	add_pv(s, "small", "2Gi", "[ReadWriteOnce]", "", NULL);
	add_pv(s, "medium", "5000Mi", "[ReadWriteOnce]", "", NULL);
	add_pv(s, "huge", "1Ti", "[ReadWriteOnce]", "", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_volume(s, "small", NULL, "Available");

	add_pvc(s, "data", "3Gi", "[ReadWriteOnce]", "", NULL);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "data", "medium", "Bound");
	assert_volume(s, "medium", "data", "Bound");
	assert_volume(s, "big", NULL, "Available");
	assert_volume(s, "small", NULL, "Available");

	/* A second claim takes the next one, not the bound one. */
	add_pvc(s, "more", "3G", "[ReadWriteOnce]", "", NULL);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "more", "big", "Bound");
	ctrl_sim_free(s);
}

/* storageClassName must be equal; "" and an absent class match "" only.
 * A claim waits until a matching volume appears. */
static void class_mismatch(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	add_pv(s, "fast1", "5Gi", "[ReadWriteOnce]", "fast", NULL);
	add_pvc(s, "want-slow", "1Gi", "[ReadWriteOnce]", "slow", NULL);
	add_pvc(s, "want-none", "1Gi", "[ReadWriteOnce]", NULL, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "want-slow", NULL, "Pending");
	assert_claim(s, "want-none", NULL, "Pending");
	assert_volume(s, "fast1", NULL, "Available");

	add_pv(s, "slow1", "5Gi", "[ReadWriteOnce]", "slow", NULL);
	add_pv(s, "plain", "5Gi", "[ReadWriteOnce]", "", NULL);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "want-slow", "slow1", "Bound");
	assert_claim(s, "want-none", "plain", "Bound");
	assert_volume(s, "fast1", NULL, "Available");
	ctrl_sim_free(s);
}

/* The volume must offer every requested access mode; volume modes must
 * be equal. */
static void access_and_volume_modes(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	add_pv(s, "rwo", "1Gi", "[ReadWriteOnce]", "", NULL);
	add_pv(s, "block", "1Gi", "[ReadWriteOnce, ReadWriteMany]", "", "  volumeMode: Block\n");
	add_pvc(s, "shared", "1Gi", "[ReadWriteMany]", "", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "shared", NULL, "Pending");

	add_pv(s, "both", "2Gi", "[ReadWriteOnce, ReadWriteMany]", "", NULL);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "shared", "both", "Bound");
	assert_volume(s, "rwo", NULL, "Available");
	assert_volume(s, "block", NULL, "Available");

	add_pvc(s, "raw", "1Gi", "[ReadWriteOnce]", "", "  volumeMode: Block\n");
	ctrl_sim_run(s, 1000);
	assert_claim(s, "raw", "block", "Bound");
	ctrl_sim_free(s);
}

/* A claim's selector narrows the volumes by label. */
static void selector(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	add_pv(s, "a", "1Gi", "[ReadWriteOnce]", "", NULL);
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: PersistentVolume\n"
						"metadata:\n  name: b\n  labels: {disk: ssd}\n"
						"spec:\n  capacity: {storage: 10Gi}\n"
						"  accessModes: [ReadWriteOnce]\n"
						"  hostPath: {path: /srv/b}\n"),
			 0);
	add_pvc(s, "fast", "1Gi", "[ReadWriteOnce]", "",
		"  selector:\n    matchLabels: {disk: ssd}\n");
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "fast", "b", "Bound");
	assert_volume(s, "a", NULL, "Available");
	ctrl_sim_free(s);
}

/* spec.volumeName picks the volume; a volume whose claimRef names a
 * claim is kept for it. */
static void pre_bound(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	add_pv(s, "small", "1Gi", "[ReadWriteOnce]", "", NULL);
	add_pv(s, "chosen", "8Gi", "[ReadWriteOnce]", "", NULL);
	add_pv(s, "reserved", "1Gi", "[ReadWriteOnce]", "",
	       "  claimRef:\n    namespace: default\n    name: owner\n");
	add_pvc(s, "picky", "1Gi", "[ReadWriteOnce]", "", "  volumeName: chosen\n");
	add_pvc(s, "other", "1Gi", "[ReadWriteOnce]", "", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "picky", "chosen", "Bound");
	assert_volume(s, "chosen", "picky", "Bound");
	assert_claim(s, "other", "small", "Bound");
	/* Reserved waits, Available, for its claim. */
	assert_volume(s, "reserved", "owner", "Available");

	add_pvc(s, "owner", "1Gi", "[ReadWriteOnce]", "", NULL);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "owner", "reserved", "Bound");
	json_t *pv = get_pv(s, "reserved"), *pvc = get_pvc(s, "owner");
	assert_string_equal(ctrl_str(pv, "spec.claimRef.uid"), ctrl_str(pvc, "metadata.uid"));
	json_decref(pv);
	json_decref(pvc);

	/* A claim naming a volume bound elsewhere stays Pending. */
	add_pvc(s, "thief", "1Gi", "[ReadWriteOnce]", "", "  volumeName: chosen\n");
	ctrl_sim_run(s, 1000);
	assert_claim(s, "thief", "chosen", "Pending");
	assert_volume(s, "chosen", "picky", "Bound");
	ctrl_sim_free(s);
}

/* Two claims, one volume: exactly one binds. */
static void one_volume_one_claim(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	add_pv(s, "only", "1Gi", "[ReadWriteOnce]", "", NULL);
	add_pvc(s, "c1", "1Gi", "[ReadWriteOnce]", "", NULL);
	add_pvc(s, "c2", "1Gi", "[ReadWriteOnce]", "", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 2000);
	json_t *a = get_pvc(s, "c1"), *b = get_pvc(s, "c2");
	int bound = (ctrl_str(a, "spec.volumeName") != NULL) + (ctrl_str(b, "spec.volumeName") != NULL);
	assert_int_equal(bound, 1);
	json_t *winner = ctrl_str(a, "spec.volumeName") ? a : b;
	json_t *pv = get_pv(s, "only");
	assert_string_equal(ctrl_str(pv, "spec.claimRef.uid"), ctrl_str(winner, "metadata.uid"));
	json_t *loser = winner == a ? b : a;
	assert_string_equal(ctrl_str(loser, "status.phase"), "Pending");
	json_decref(pv);
	json_decref(a);
	json_decref(b);
	ctrl_sim_free(s);
}

/* Deleting the claim: Retain -> Released (claimRef kept), Recycle too,
 * Delete -> the volume goes. A Released volume is not bound again. */
static void release(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	add_pv(s, "keep", "1Gi", "[ReadWriteOnce]", "", "  persistentVolumeReclaimPolicy: Retain\n");
	add_pv(s, "drop", "2Gi", "[ReadWriteOnce]", "", "  persistentVolumeReclaimPolicy: Delete\n");
	add_pv(s, "recycle", "3Gi", "[ReadWriteOnce]", "",
	       "  persistentVolumeReclaimPolicy: Recycle\n");
	add_pvc(s, "c1", "1Gi", "[ReadWriteOnce]", "", NULL);
	add_pvc(s, "c2", "2Gi", "[ReadWriteOnce]", "", NULL);
	add_pvc(s, "c3", "3Gi", "[ReadWriteOnce]", "", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "c1", "keep", "Bound");
	assert_claim(s, "c2", "drop", "Bound");
	assert_claim(s, "c3", "recycle", "Bound");

	assert_int_equal(ctrl_sim_delete(s, "persistentvolumeclaims", "default", "c1", -1), 0);
	assert_int_equal(ctrl_sim_delete(s, "persistentvolumeclaims", "default", "c2", -1), 0);
	assert_int_equal(ctrl_sim_delete(s, "persistentvolumeclaims", "default", "c3", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_volume(s, "keep", "c1", "Released");
	assert_volume(s, "recycle", "c3", "Released");
	json_t *gone = get_pv(s, "drop");
	assert_null(gone);

	/* A new claim of the same name is another claim (another uid). */
	add_pvc(s, "c1", "1Gi", "[ReadWriteOnce]", "", NULL);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "c1", NULL, "Pending");
	assert_volume(s, "keep", "c1", "Released");
	ctrl_sim_free(s);
}

/* A bound claim whose volume disappears is Lost. */
static void lost_claim(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	add_pv(s, "v", "1Gi", "[ReadWriteOnce]", "", NULL);
	add_pvc(s, "c", "1Gi", "[ReadWriteOnce]", "", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "c", "v", "Bound");
	assert_int_equal(ctrl_sim_delete(s, "persistentvolumes", NULL, "v", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "c", "v", "Lost");
	ctrl_sim_free(s);
}

/* Bindings made before a leader change are kept, half-done ones are
 * finished. */
static void restart_keeps_bindings(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	add_pv(s, "v1", "1Gi", "[ReadWriteOnce]", "", NULL);
	add_pv(s, "v2", "1Gi", "[ReadWriteOnce]", "", NULL);
	add_pvc(s, "c1", "1Gi", "[ReadWriteOnce]", "", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "c1", "v1", "Bound");
	ctrl_sim_stop(s);

	/* The volume side of a binding, written by a leader that died
	 * before writing the claim. */
	add_pvc(s, "c2", "1Gi", "[ReadWriteOnce]", "", NULL);
	json_t *c2 = get_pvc(s, "c2"), *v2 = get_pv(s, "v2");
	json_object_set_new(json_object_get(v2, "spec"), "claimRef",
			    json_pack("{s:s, s:s, s:s, s:s}", "kind", "PersistentVolumeClaim",
				      "namespace", "default", "name", "c2", "uid",
				      ctrl_str(c2, "metadata.uid")));
	json_object_set_new(json_object_get(v2, "status"), "phase", json_string("Bound"));
	assert_int_equal(ctrl_sim_apply(s, v2), 0);
	json_decref(c2);
	json_decref(v2);

	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_claim(s, "c1", "v1", "Bound");
	assert_claim(s, "c2", "v2", "Bound");
	ctrl_sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(binds_fitting_volume),
		cmocka_unit_test(smallest_fit),
		cmocka_unit_test(class_mismatch),
		cmocka_unit_test(access_and_volume_modes),
		cmocka_unit_test(selector),
		cmocka_unit_test(pre_bound),
		cmocka_unit_test(one_volume_one_claim),
		cmocka_unit_test(release),
		cmocka_unit_test(lost_claim),
		cmocka_unit_test(restart_keeps_bindings),
	};
	return cmocka_run_group_tests_name("ctrl_pvbinder", tests, NULL, NULL);
}
