#include <gtest/gtest.h>

#include <rte_eal.h>

#include "dpdk_env.hpp"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  tp::test::init_eal();
  const int rc = RUN_ALL_TESTS();
  tp::test::shutdown_eal();
  return rc;
}
