#include <gtest/gtest.h>

#include "dpdk_env.hpp"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  tp::test::init_eal();
  return RUN_ALL_TESTS();
}
