#ifndef HIPS_SERVICES_TESTING_RESIDENT_MEMORY_H_
#define HIPS_SERVICES_TESTING_RESIDENT_MEMORY_H_

namespace hips {

// This process's resident memory, in MiB (/proc/self/statm; 0 if it cannot
// be read): what soak tests record before and after.
double ResidentMiB();

}  // namespace hips

#endif  // HIPS_SERVICES_TESTING_RESIDENT_MEMORY_H_
