/* mpi_hello.c - the smallest real MPI program, run by the tests under otel-run to prove the
 * launcher leaves MPI alone (it never calls MPI itself; see ARCHITECTURE.md §2).
 * Prints one line "rank R of N" and flushes it at once, so output is not lost if a test kills
 * the job. Optional argv[1]: exit code to return after MPI_Finalize (tests exit-status passing).
 * Built by scripts/build-support.sh with mpicc.openmpi and mpicc.mpich. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int rank = -1, size = -1;
    int code = argc > 1 ? atoi(argv[1]) : 0;

    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "mpi_hello: MPI_Init failed\n");
        return 99;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    printf("rank %d of %d\n", rank, size);
    fflush(stdout);
    MPI_Finalize();
    return code;
}
