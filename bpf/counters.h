/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Kernel-side counters: one per-CPU array slot per reason something was dropped or missed.
 * Shared by every BPF object (each has its own `counters` map) and read by the agent's health code. */
#ifndef HOSTSCOPE_BPF_COUNTERS_H
#define HOSTSCOPE_BPF_COUNTERS_H

enum hs_counter {
  HS_CNT_RB_DROPPED = 0,    /* ring buffer reserve failed: event lost */
  HS_CNT_EVENTS = 1,        /* events submitted */
  HS_CNT_SOCK_TABLE_FULL = 2, /* socket table insert failed */
  HS_CNT_CLOSE_UNTRACKED = 3, /* close of a socket not in the table (opened before start, or evicted) */
  HS_CNT_PASSIVE_NO_OWNER = 4, /* an accepted connection closed before its owner sent, received or closed */
  HS_CNT_GOID_READ_FAIL = 5,  /* reading a goroutine id from a Go thread failed */
  HS_CNT_PROC_TABLE_FULL = 6, /* process table insert failed */
  HS_CNT_PEER_EVICTED = 7,    /* a connection waiting for its local peer lost its peer-table entry (LRU full) */
  HS_CNT_EDGE_TABLE_FULL = 8, /* a connection whose edge found no room in tcp_edges (sent as events instead) */
  HS_CNT_EDGE_CREATED = 9,    /* entries created in tcp_edges: its occupancy, as nothing deletes them yet */
  HS_CNT_MAX = 10,
};

#endif
